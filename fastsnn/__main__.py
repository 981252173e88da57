"""``python -m fastsnn``: print which backends are available here and why not."""

import platform

import torch

import fastsnn


def main() -> None:
    print(f"fastsnn {fastsnn.__version__}  torch {torch.__version__}  "
          f"python {platform.python_version()}  {platform.machine()}")
    for name, per_device in fastsnn.backends().items():
        for device, reason in per_device.items():
            state = "available" if not reason else f"unavailable: {reason}"
            print(f"  {name:<10} {device:<5} {state}")


if __name__ == "__main__":
    main()
