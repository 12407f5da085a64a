"""`hf-configs`: the models this host's Hugging Face cache holds, with their config.json, as one JSON line.

The cache is where huggingface_hub puts downloads: $HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else
$HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. Each model is a folder
models--ORG--NAME with snapshots/<revision>/config.json; refs/main names the revision `main` pointed at when it was
downloaded. The extension reads this to estimate a model the host has without asking the Hub.
"""

import json
import os
from typing import Any, Dict, List, Optional

# A config.json is a few kB; one far larger is not read (its entry says so), and the whole answer stays small
# enough for one SSH exec however many models the cache holds.
MAX_CONFIG_BYTES = 256 * 1024
MAX_MODELS = 500


def hub_cache_dir(env=None):
    # type: (Optional[Dict[str, str]]) -> str
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return env["HUGGINGFACE_HUB_CACHE"]
    hf_home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(hf_home, "hub")


def _snapshot(repo_dir):
    # type: (str) -> Optional[str]
    """The revision to report: the one refs/main names when its snapshot has a config.json, else the snapshot
    whose config.json was written last."""
    snapshots = os.path.join(repo_dir, "snapshots")
    try:
        with open(os.path.join(repo_dir, "refs", "main")) as f:
            main = f.read().strip()
    except OSError:
        main = ""
    if main and "/" not in main and os.path.isfile(os.path.join(snapshots, main, "config.json")):
        return main
    try:
        revisions = os.listdir(snapshots)
    except OSError:
        return None
    found = []
    for revision in revisions:
        path = os.path.join(snapshots, revision, "config.json")
        try:
            found.append((-os.stat(path).st_mtime, revision))
        except OSError:
            continue
    return sorted(found)[0][1] if found else None


def _read_config(path):
    # type: (str) -> Dict[str, Any]
    try:
        size = os.stat(path).st_size  # follows the snapshot's symlink to the blob
        if size > MAX_CONFIG_BYTES:
            return {"error": "config.json is %d bytes, over the %d-byte cap" % (size, MAX_CONFIG_BYTES)}
        with open(path, "rb") as f:
            return {"config": json.loads(f.read().decode("utf-8"))}
    except (OSError, ValueError) as e:
        return {"error": "cannot read config.json: %s" % e}


def list_cached_models(cache_dir):
    # type: (str) -> List[Dict[str, Any]]
    try:
        folders = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    models = []  # type: List[Dict[str, Any]]
    for folder in folders:
        if not folder.startswith("models--") or len(models) >= MAX_MODELS:
            continue
        repo_dir = os.path.join(cache_dir, folder)
        revision = _snapshot(repo_dir)
        if revision is None:
            continue
        path = os.path.join(repo_dir, "snapshots", revision, "config.json")
        entry = {"id": folder[len("models--"):].replace("--", "/"), "revision": revision, "path": path}
        entry.update(_read_config(path))
        models.append(entry)
    return models


def cmd_hf_configs(args):
    # type: (Any) -> int
    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir or hub_cache_dir()))
    print(json.dumps({"cache_dir": cache_dir, "models": list_cached_models(cache_dir)}))
    return 0


def write_run_hf_configs(run_dir):
    # type: (str) -> None
    """DIR/hf-configs.json at a run's start: what this host's cache held, so the run's record says which models
    the host had. Never stops a run: a cache that cannot be read is an empty list."""
    try:
        cache_dir = hub_cache_dir()
        report = {"cache_dir": cache_dir, "models": list_cached_models(cache_dir)}
        tmp = os.path.join(run_dir, "hf-configs.json.tmp")
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, os.path.join(run_dir, "hf-configs.json"))
    except (OSError, ValueError, TypeError):
        pass
