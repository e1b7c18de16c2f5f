"""Fetch a named model or data set into the cache and print its folder.

    openbert download minilm-l6          # prints ~/.cache/openbert/minilm-l6/...
    openbert download --list             # names, what is cached and where, descriptions
"""
from __future__ import annotations

import argparse

from ..checkpoints import assets
from ..errors import OpenBertError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="asset name (see --list)")
    parser.add_argument("--list", action="store_true",
                        help="list the known names, which are cached and where, and exit")
    parser.add_argument("--cache_dir", default=None,
                        help="where to cache (default: $OPENBERT_CACHE or ~/.cache/openbert)")


def run(args: argparse.Namespace) -> int:
    if args.list:
        root = args.cache_dir or assets.cache_dir()
        print(f"cache: {root}  (models: pass the name as --init_checkpoint; fetched on first use)")
        width = max(map(len, assets.ASSETS))
        for name, asset in assets.ASSETS.items():
            source = asset.pip and f"pip: {asset.pip}" or asset.url
            where = assets.cached(name, args.cache_dir)
            print(f"{name:<{width}}  {asset.kind:<5}  {f'cached: {where}' if where else 'not cached'}\n"
                  f"{'':<{width}}  {asset.description} [{source}]")
        return 0
    if not args.name:
        raise OpenBertError("name an asset to download (`openbert download --list` shows them)")
    print(assets.fetch(args.name, args.cache_dir))
    return 0
