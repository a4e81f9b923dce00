from tests.fakes.serve_fakes import launch_router_main

launch_router_main()
