"""Wattbench's agent, the part that runs on the GPU host (docs/protocol.md).

Shipped as one archive, wattbench_agent.pyz (scripts/build_agent.py): `python3 wattbench_agent.pyz COMMAND`.
From the sources: `python3 -m wattbench_agent COMMAND` with agent/ on PYTHONPATH, or `python3
agent/wattbench_agent COMMAND`. The subcommands are in __main__.py; each name lives in one module and is
imported from there (this file re-exports nothing, so importing one module loads only what it needs).
"""
