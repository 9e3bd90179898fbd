"""Test-only potpyri plugin that fails at import, as a plugin with a missing dependency would."""

raise ImportError("potpyri_crashing needs the module 'no_such_dependency', which is not installed")
