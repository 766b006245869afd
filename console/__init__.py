"""The staff console: what HQ's and the centres' staff do in a browser, and their accounts."""
