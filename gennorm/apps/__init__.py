"""Applications on top of gennorm's public API: the Gradio demo (gennorm.apps.demo)."""
