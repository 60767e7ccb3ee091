"""The Click commands: each parses its options, calls the pipeline for one image or clip (or
the gallery), and prints its summary. Commands import nothing from each other."""
