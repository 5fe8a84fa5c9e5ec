"""`invoke lock-images`: pin every base image of infra/catalogue/images.yaml to its registry digest."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from infra.tasks import task


def _rel(path: Path) -> str:
    from infra import constants as C

    try:
        return str(path.resolve().relative_to(C.REPO_ROOT))
    except ValueError:
        return str(path)


@task(help={"timeout": "overall deadline in seconds for all registry requests (default 60)",
            "images": "the images file to read (default infra/catalogue/images.yaml)",
            "lock": "the lock file to write (default infra/catalogue/images.lock.yaml)"})
def lock_images(c, timeout=None, images=None, lock=None):
    """Resolve each base image tag to its digest through the registry API and write the lock file."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from infra import constants as C
    from infra.imagelock import DEFAULT_DEADLINE_S, LockError, lock_images as _lock

    try:
        deadline = float(timeout) if timeout is not None else DEFAULT_DEADLINE_S
    except ValueError:
        raise Exit(f"--timeout {timeout!r}: expected seconds", code=2) from None
    if not 0 < deadline <= 3600:
        raise Exit("--timeout must be between 0 and 3600 seconds", code=2)
    console = Console(stderr=True)
    lock_path = Path(lock) if lock else C.IMAGE_LOCK_FILE
    with console.status("asking the registries ...") as status:
        def progress(ref, result, error):
            status.update(f"asking the registries ... {escape(ref)} {'ok' if result else 'failed'}")

        try:
            entries, errors = _lock(Path(images) if images else None, lock_path, deadline_s=deadline, on_result=progress)
        except (LockError, OSError) as exc:
            raise Exit(f"lock-images: {exc}", code=1) from None
    table = Table(title=f"base images -> {lock_path}")
    for col in ("image", "digest", "status"):
        table.add_column(col)
    for ref, entry in entries.items():
        state = "[red]kept previous entry[/]" if ref in errors else "[green]resolved[/]"
        table.add_row(escape(ref), escape(str(entry.get("digest"))), state)
    Console(width=max(Console().width, 140)).print(table)
    for ref, err in errors.items():
        console.print(escape(err), style="red", highlight=False)
    if errors:
        raise Exit(f"lock-images: {len(errors)} of {len(entries)} image(s) not resolved. Next: run `invoke lock-images` "
                   f"where the registries are reachable (Docker Hub, GHCR) and commit {_rel(lock_path)}; to build on "
                   "a workstation meanwhile, set image.allow_unpinned_base: true in its stack file (as the local stack does)",
                   code=1)
    console.print(f"wrote {lock_path}: commit it so every build uses these digests")


def register(ns: Collection) -> Collection:
    ns.add_task(lock_images)
    return ns
