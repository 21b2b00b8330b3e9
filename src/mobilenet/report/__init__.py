"""The HTML report: the family measured on this machine, in one self-contained file (`mobilenet.report.html`)."""
