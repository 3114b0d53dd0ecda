"""The monitor: active probes of every NAS in a process of its own (`conecta monitor`). Imports
portal.core and third-party libraries only, never portal.web, portal.cli or radius."""
