"""invoke entry point: a Collection assembled from the task modules in infra/tasks/."""
from invoke import Collection

from infra.tasks import render

ns = Collection()
ns.add_task(render.render)
ns.add_task(render.stack_reference)  # invoke stack-reference: the README key table from infra/spec.py
__import__("infra.tasks.pulumi_cli", fromlist=["register"]).register(ns)  # invoke preview|up|destroy|outputs --stack NAME
__import__("infra.tasks.endpoint", fromlist=["register"]).register(ns)  # invoke smoke-test|wait-ready|bench|eval --stack NAME | --url URL
__import__("infra.tasks.flags", fromlist=["register"]).register(ns)  # invoke check-flags [--stack NAME | --all] [--diff] [--refresh-snapshot]
__import__("infra.tasks.images", fromlist=["register"]).register(ns)  # invoke lock-images
