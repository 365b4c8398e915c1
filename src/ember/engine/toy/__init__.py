"""The toy world: a synthetic scene renderer, the `toy` base model, and measures of what it draws."""
