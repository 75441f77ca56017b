# The environment roots called the component modules directly before the platform
# module gathered them: these blocks move existing state instead of replacing resources.

moved {
  from = module.alerts
  to   = module.platform.module.alerts
}

moved {
  from = module.data_lake
  to   = module.platform.module.data_lake
}

moved {
  from = module.model_registry
  to   = module.platform.module.model_registry
}

moved {
  from = module.serving
  to   = module.platform.module.serving
}

moved {
  from = module.orchestration
  to   = module.platform.module.orchestration
}

moved {
  from = module.wiring
  to   = module.platform.module.wiring
}
