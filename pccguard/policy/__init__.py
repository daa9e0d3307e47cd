"""Stage 2: the rulebook, profiles, waivers and the policy engines that evaluate them."""
