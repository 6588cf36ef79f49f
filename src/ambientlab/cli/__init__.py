"""The command line, the top layer: ``ambientlab`` (:mod:`ambientlab.cli.main`) and its ``lab``
commands (:mod:`ambientlab.cli.lab`)."""
