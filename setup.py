"""Map the top-level folders into the single ``pccguard`` import namespace.

The tree keeps the architecture visible (``adapters/``, ``plugins/``, ``rules/``,
``enclave_runtime/``), but installed they must live under ``pccguard`` so that no
generic top-level name (``adapters``, ``plugins``) lands in site-packages.
"""

from setuptools import find_packages, setup

ROOTS = {
    "pccguard": "pccguard",
    "pccguard.adapters": "adapters",
    "pccguard.plugins": "plugins",
    "pccguard.enclave_runtime": "enclave_runtime",
    "pccguard.rules": "rules",
}

packages = []
for namespace, folder in ROOTS.items():
    packages.append(namespace)
    packages += [f"{namespace}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
