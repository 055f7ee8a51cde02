"""``sgdlab demo``: the tutorial's experiments as pictures."""

import os


def cmd_demo(args):
    from ..demos import get_demo

    from ..demos import DEMO_PICTURES
    from ..runfolder import check_output_file

    demo = get_demo(args.name)
    for name in DEMO_PICTURES[args.name]:                  # before any work: never half a set replaced
        check_output_file(os.path.join(args.out, name), overwrite=args.overwrite)
    os.makedirs(args.out, exist_ok=True)
    result = demo(args.out, show=args.show, quick=args.quick)
    for path in result.get("files", []):
        print(path)
    return 0


def add_parser(sub):
    from ..demos import DEMOS

    demo = sub.add_parser("demo", help="tutorial experiments as PNG pictures",
                          description="Run one of the tutorial's experiments and save its pictures.")
    demo.add_argument("name", choices=list(DEMOS), metavar="NAME", help=", ".join(DEMOS))
    demo.add_argument("--out", default="demos", help="folder for the PNG files (default ./demos)")
    demo.add_argument("--show", action="store_true", help="also open the pictures where a display exists")
    demo.add_argument("--quick", action="store_true", help="shorter runs (for tests and slow machines)")
    demo.add_argument("--overwrite", action="store_true", help="replace pictures of an earlier run in --out")
    demo.set_defaults(handler=cmd_demo)
