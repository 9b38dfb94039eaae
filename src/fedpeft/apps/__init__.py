"""Entry points that compose a whole run: Flower's ServerApp and ClientApp (``apps.flower``). They sit at the
top of the layering, beside the CLI, and import nothing heavy at load time (a ClientApp process has no torch
to spare)."""
