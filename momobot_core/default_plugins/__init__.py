"""The core's built-in plugins, registered like external ones (``momobot plugins --all`` lists them)."""
