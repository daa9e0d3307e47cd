"""``pccguard scan``: an outside-in residue scanner for what a serving engine leaves on disk.

A mitigation that keeps prompts out of offload stores, logs, KV-event captures
and crash dumps is proven from the outside by looking for a known canary in
them. :mod:`.canaries` turns each canary into the byte patterns it can leave
(text in UTF-8 and UTF-16, the model's token ids as 32- and 64-bit integers and
as decimal lists), :mod:`.search` streams every file past those patterns in
bounded memory, :mod:`.report` renders the findings (table, JSON, SARIF) and
:mod:`.cli` wires the command. Exit status: 0 clean, 1 found, 2 error (an
unreadable file is an error, never "clean").
"""
