"""The agent's version, the protocol version it speaks, and the file it runs from."""

import os

AGENT_VERSION = "0.1.0"
PROTOCOL_VERSION = 1

# What `python3 AGENT_FILE COMMAND ...` starts this agent again from (the sim server is started so): the
# .pyz archive this package was imported from (its modules are ARCHIVE/wattbench_agent/*.py), or, run from
# the sources, the package's own directory (python3 runs its __main__.py).
AGENT_FILE = os.path.dirname(os.path.abspath(__file__))
if os.path.isfile(os.path.dirname(AGENT_FILE)):
    AGENT_FILE = os.path.dirname(AGENT_FILE)
