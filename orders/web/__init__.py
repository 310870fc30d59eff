"""The Flask layer: blueprints per surface, extensions, error translation, CLI.

The only part of ``orders`` that imports Flask.
"""
