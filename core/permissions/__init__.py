"""Tool permissions: the policy, the hook every CLI runs before a tool call, and the asking."""
