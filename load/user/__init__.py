"""The Locust side: the websocket user, the plugin and its recorder, the options Locust shows, the web form's guard, the --help hook. The only code that imports locust or gevent."""
