"""Deployment: serving made equal to the registry's aliases (the reconciler), the SavedModel bytes a
signed verdict vouches for published atomically, TF Serving's model config and reloads, and the
webhook that reconciles when an alias moves."""
