"""Development tooling: used by `invoke` dev tasks, the tests and CI; never imported by infra/'s core,
never copied into an image (images/build.py copies infra/ only)."""
