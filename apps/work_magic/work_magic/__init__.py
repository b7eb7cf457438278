"""clonezero: the work-magic example app."""
