# Group data for every environment. Keys left out here take their defaults, which live
# in one place only: the settings models, listed with their types and meanings in
# docs/settings.md. Override per environment in group_data/<inventory name>.py; every key
# is checked before anything touches a host. A unit test keeps this file free of defaults.
