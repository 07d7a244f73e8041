"""What the benchmarks on the reduced CIFAR-10 of ../shared/data share: the archive's default
path and command-line option, its extraction for torchvision's ImageFolder, and the normalisation
both sides use. The archive (32x32 JPEG files in cifar10-jpeg/{train,test}/<class>/) is not part of
the project."""
import os
import sys
import tarfile

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def add_archive_option(parser):
    parser.add_argument("--archive", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                          "..", "shared", "data",
                                                          "cifar10-jpeg-20k.tar"))


def check_archive(path):
    """Exits with status 2 (a usage error, as argparse's) when the archive is not there."""
    if not os.path.isfile(path):
        print(f"{path}: missing (the reduced CIFAR-10 of ../shared/data; --archive names "
              "another copy)", file=sys.stderr)
        sys.exit(2)


def extract_split(archive, into, split):
    """Extracts the archive into `into` and returns the split's folder of class folders, under the
    archive's top-level folder if it has one."""
    with tarfile.open(archive) as tar:
        # Python 3.11.2 (Debian 12) has no extraction filters; the members are checked here.
        members = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and
                   not m.name.startswith("/") and ".." not in m.name.split("/")]
        tar.extractall(into, members=members)
    for base in (into, *[os.path.join(into, d) for d in sorted(os.listdir(into))]):
        if os.path.isdir(os.path.join(base, split)):
            return os.path.join(base, split)
    sys.exit(f"no {split}/ folder in the archive")
