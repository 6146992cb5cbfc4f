"""containers.podman.podman with pipelining: a module runs in one `podman exec --interactive` that reads it on stdin.

The collection's plugin runs each module as six podman processes (make a temporary folder, copy the module in,
chown, chmod, run, clean up) and mounts the container's filesystem at every task; here a module costs one podman
exec, and the filesystem is mounted only when a file is copied in or out.
"""

from __future__ import annotations

DOCUMENTATION = """
name: mailappliance_podman
short_description: Run tasks in an existing podman container, modules piped to one podman exec
description:
  - The containers.podman.podman connection with pipelining. Its options are the same, plus C(pipelining).
  - The container's filesystem is mounted when a file is transferred, not at every task.
options:
  remote_addr:
    description: The name or ID of the container.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description:
      - User, by name or UID, that runs commands inside the container.
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Extra arguments to pass to the podman command line.
    default: ''
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: Executable for the podman command.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description:
      - Send modules to the interpreter's stdin instead of copying them into the container first.
      - On by default, since it is what this plugin is for; Ansible's own pipelining settings turn it off.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
"""

from typing import Any

from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = "mailappliance_podman"
    has_pipelining = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mount_attempted = False

    def _connect(self) -> Connection:
        # Commands need no mount; put_file and fetch_file ask for one.
        self._connected = True
        return self

    def _podman(self, cmd: Any, cmd_args: list[Any] | None = None, in_data: bytes | None = None,
                use_container_id: bool = True) -> tuple[int, bytes, bytes]:
        # Without --interactive podman exec leaves stdin unattached and the piped module never arrives.
        if in_data is not None and isinstance(cmd, list) and cmd[:1] == ["exec"]:
            cmd = ["exec", "--interactive", *cmd[1:]]
        return super()._podman(cmd, cmd_args, in_data, use_container_id)

    def _mount(self) -> None:
        """Mount the container's filesystem once per connection, as the collection's plugin does at connect."""
        if not self._mount_attempted:
            self._mount_attempted = True
            super()._connect()

    def put_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().fetch_file(in_path, out_path)
