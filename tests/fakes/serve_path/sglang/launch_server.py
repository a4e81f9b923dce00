from tests.fakes.serve_fakes import launch_server_main

launch_server_main()
