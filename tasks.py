"""invoke entry point: a Collection assembled from the task modules in infra/tasks/."""
from invoke import Collection

from infra.tasks import render

ns = Collection()
ns.add_task(render.render)
