"""xcscan: localization (信创) and security-compliance scanner."""
__version__ = "0.1.0"
