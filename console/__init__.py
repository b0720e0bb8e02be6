"""The operators' console: the Django admin site with a dashboard, and the helpers every app's admin uses
(actions that call services and report counts, display helpers that mask secrets, filters, forms, charts)."""
