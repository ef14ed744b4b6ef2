"""``python -m optical_flow_ros NAME [ARGS...]``: run one of the package's executables.

The same as ``ros2 run optical_flow_ros NAME [ARGS...]`` (see
:mod:`optical_flow_ros.tools.executables`).
"""

from optical_flow_ros.tools.executables import main

raise SystemExit(main())
