"""Korean training data written by rules rather than by a model: every answer is computed, so it can be
checked (SFT targets and GRPO rewards). `math_ko` is the first: verifiable Korean math word problems."""
