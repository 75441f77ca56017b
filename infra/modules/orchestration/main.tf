# Amazon MWAA running the DAG bundle: the environment, its versioned DAG bucket with the
# bundle uploaded from this repository, the startup script that points the bundle at the
# platform's settings, and an execution role scoped to what the DAGs touch.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # "arn:<partition>:<service>:<region>:<account>" for the services the role reaches.
  arn = {
    for service in ["cloudwatch", "logs", "sagemaker", "secretsmanager", "ssm"] :
    service => "arn:${local.partition}:${service}:${local.region}:${local.account_id}"
  }

  # MWAA syncs the bucket's dags/ folder to this path on every component.
  dags_path    = "/usr/local/airflow/dags"
  include_path = "${local.dags_path}/include"

  environment_variables = {
    MLPLATFORM_ENV        = "aws"
    MLPLATFORM_SSM_PREFIX = var.ssm_prefix
  }

  airflow_configuration_options = merge(
    {
      "secrets.backend" = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
      "secrets.backend_kwargs" = jsonencode({
        connections_prefix = var.connections_prefix
        variables_prefix   = var.variables_prefix
      })
    },
    var.airflow_configuration_options,
  )

  ##############################################################################
  # The bundle, as S3 keys => local paths
  ##############################################################################

  # Bytecode, build metadata, folder READMEs and uncommitted Great Expectations state
  # never ship.
  excluded = "(__pycache__/|\\.py[co]$|\\.egg-info/|\\.DS_Store$|/README\\.md$|^great_expectations/uncommitted/|^dags/\\.airflowignore$)"

  # Everything MWAA must see as files sits under dags/, because that folder is what it
  # syncs; .airflowignore keeps the DAG processor out of the non-DAG folders.
  bundle_folders = {
    dags               = "dags/"
    include            = "dags/include/"
    great_expectations = "dags/great_expectations/"
  }

  bundle_files = merge([
    for folder, key_prefix in local.bundle_folders : {
      for relative in fileset("${var.bundle_root}/${folder}", "**") :
      "${key_prefix}${relative}" => "${var.bundle_root}/${folder}/${relative}"
      if length(regexall(local.excluded, "${folder}/${relative}")) == 0
    }
  ]...)

  repo_airflowignore = "${var.bundle_root}/dags/.airflowignore"
  airflowignore = format("%s\n", join("\n", compact([
    fileexists(local.repo_airflowignore) ? trimspace(file(local.repo_airflowignore)) : "",
    "include/",
    "great_expectations/",
    "constraints.txt",
  ])))

  # MWAA loads plugins only from a zip file. infra/scripts/plugins_zip.py (`make
  # plugins-zip`) builds it reproducibly, with the same exclusions, and writes next to it
  # the digest of the files it zipped, computed as below: a plan with a missing or stale
  # zip stops at the precondition on aws_s3_object.plugins instead of uploading it.
  plugin_files = sort([
    for relative in fileset("${var.bundle_root}/plugins", "**") : relative
    if length(regexall(local.excluded, "plugins/${relative}")) == 0
  ])
  has_plugins = length(local.plugin_files) > 0 || local.ships_wheels
  plugins_source_digest = sha256(join("", [
    for relative in local.plugin_files : "${relative} ${filesha256("${var.bundle_root}/plugins/${relative}")}\n"
  ]))
  plugins_zip         = coalesce(var.plugins_zip, "${var.bundle_root}/infra/.build/plugins.zip")
  plugins_digest_file = "${local.plugins_zip}.sources.sha256"
  plugins_zip_digest  = fileexists(local.plugins_digest_file) ? trimspace(file(local.plugins_digest_file)) : ""
  # plugins_zip.py also records the sha256 of the requirements file its wheels are for.
  plugins_wheels_file   = "${local.plugins_zip}.wheels.sha256"
  plugins_zip_wheels_of = fileexists(local.plugins_wheels_file) ? trimspace(file(local.plugins_wheels_file)) : ""
  plugins_zip_current = (
    fileexists(local.plugins_zip) && local.plugins_zip_digest == local.plugins_source_digest
    && (!local.ships_wheels || local.plugins_zip_wheels_of == filesha256(local.requirements_path))
  )

  # The constraints MWAA installs with must pin the Airflow it runs: pip would otherwise
  # replace MWAA's own Airflow with the pinned one.
  constraints_path            = "${var.bundle_root}/${var.constraints_file}"
  constraints_airflow_pins    = regexall("(?m)^apache-airflow==([^\\s;]+)", file(local.constraints_path))
  constraints_airflow_version = length(local.constraints_airflow_pins) == 1 ? local.constraints_airflow_pins[0][0] : null

  # The requirements MWAA installs are rendered from requirements.txt outside Terraform, by
  # infra/scripts/mwaa_requirements.py (`make lock`): the bundle's packages that MWAA's image
  # lacks, at the versions of the constraints file, installed offline from the wheels in
  # plugins.zip with the constraints file referenced where MWAA syncs it. `make test-mwaa`
  # installs this same file the way MWAA does. Its header records a digest of the files it
  # was rendered from; the module computes the same digest, and a plan with a stale file
  # stops at the precondition on aws_s3_object.requirements.
  requirements_path = "${var.bundle_root}/infra/mwaa/requirements.txt"
  requirements      = file(local.requirements_path)
  requirements_sources = [
    "requirements.txt",
    var.constraints_file,
    "infra/mwaa/${var.airflow_version}/preinstalled.txt",
    "infra/mwaa/${var.airflow_version}/mwaa_essential_constraints.txt",
  ]
  requirements_sources_digest = sha256(join("", [
    for relative in local.requirements_sources :
    "${relative} ${fileexists("${var.bundle_root}/${relative}") ? filesha256("${var.bundle_root}/${relative}") : "missing"}\n"
  ]))
  requirements_recorded_digest = try(regexall("(?m)^# sources-sha256: ([0-9a-f]{64})$", local.requirements)[0][0], "")
  # The wheels travel in plugins.zip, so the zip ships even while plugins/ holds no plugin.
  ships_wheels = length(regexall("(?m)^--find-links /usr/local/airflow/plugins/wheels$", local.requirements)) > 0

  startup_script = templatefile("${path.module}/startup.sh.tftpl", {
    environment_variables = local.environment_variables
    include_path          = local.include_path
  })
}

################################################################################
# KMS key (DAG bucket, MWAA metadata, queues and logs)
################################################################################

module "kms" {
  source = "../kms"

  alias                   = "${var.name}-airflow"
  description             = "${var.name}: MWAA environment and DAG bucket"
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags

  # MWAA's CloudWatch log groups are encrypted with this key by the Logs service.
  service_statements = [{
    sid      = "AllowMwaaLogGroups"
    services = ["logs.${local.region}.amazonaws.com"]
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    conditions = [{
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["${local.arn.logs}:*"]
    }]
  }]
}

# The key and its alias lived in this module before the kms module existed.
moved {
  from = aws_kms_key.this
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.this
  to   = module.kms.aws_kms_alias.this
}

################################################################################
# DAG bucket and the bundle in it
################################################################################

module "dag_bucket" {
  source = "../secure_bucket"

  # MWAA's console and its managed policies expect DAG buckets named airflow-*.
  bucket            = "airflow-${var.name}-${local.account_id}-${local.region}"
  kms_key_arn       = module.kms.key_arn
  access_log_bucket = var.access_log_bucket
  force_destroy     = var.force_destroy
  # Old bundle versions are only useful for a quick rollback.
  noncurrent_version_expiration_days = 30
  tags                               = var.tags
}

resource "aws_s3_object" "bundle" {
  for_each = local.bundle_files

  bucket                 = module.dag_bucket.bucket
  key                    = each.key
  source                 = each.value
  source_hash            = filemd5(each.value)
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  depends_on = [module.dag_bucket]
}

resource "aws_s3_object" "airflowignore" {
  bucket                 = module.dag_bucket.bucket
  key                    = "dags/.airflowignore"
  content                = local.airflowignore
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  depends_on = [module.dag_bucket]
}

resource "aws_s3_object" "constraints" {
  bucket                 = module.dag_bucket.bucket
  key                    = "dags/constraints.txt"
  source                 = local.constraints_path
  source_hash            = filemd5(local.constraints_path)
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  lifecycle {
    precondition {
      condition     = local.constraints_airflow_version == var.airflow_version
      error_message = "${var.constraints_file} pins apache-airflow ${coalesce(local.constraints_airflow_version, "(no single pin)")} but the environment runs Airflow ${var.airflow_version}: point constraints_file at constraints resolved for Airflow ${var.airflow_version}, or choose the matching airflow_version."
    }
  }

  depends_on = [module.dag_bucket]
}

resource "aws_s3_object" "requirements" {
  bucket                 = module.dag_bucket.bucket
  key                    = "requirements.txt"
  content                = local.requirements
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  lifecycle {
    precondition {
      condition     = local.requirements_recorded_digest == local.requirements_sources_digest
      error_message = "infra/mwaa/requirements.txt was not rendered from today's requirements.txt, ${var.constraints_file} and MWAA's files in infra/mwaa/${var.airflow_version}/: run `make lock` (infra/scripts/mwaa_requirements.py) and plan again."
    }
  }

  depends_on = [module.dag_bucket]
}

resource "aws_s3_object" "startup_script" {
  bucket                 = module.dag_bucket.bucket
  key                    = "startup.sh"
  content                = local.startup_script
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  depends_on = [module.dag_bucket]
}

resource "aws_s3_object" "plugins" {
  count = local.has_plugins ? 1 : 0

  bucket                 = module.dag_bucket.bucket
  key                    = "plugins.zip"
  source                 = local.plugins_zip
  source_hash            = local.plugins_zip_current ? filemd5(local.plugins_zip) : null
  server_side_encryption = "aws:kms"
  kms_key_id             = module.kms.key_arn
  tags                   = var.tags

  lifecycle {
    precondition {
      condition     = local.plugins_zip_current
      error_message = "${local.plugins_zip} is missing or older than plugins/ or infra/mwaa/requirements.txt (the wheels it carries): run `make plugins-zip` (python3 infra/scripts/plugins_zip.py) and plan again."
    }
  }

  depends_on = [module.dag_bucket]
}

################################################################################
# Execution role
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-mwaa-execution"
  description        = "Execution role of the MWAA environment ${var.name} and of every task it runs."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  # What MWAA itself needs (AWS's documented execution role, scoped to this environment).
  statement {
    sid       = "PublishEnvironmentMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = ["arn:${local.partition}:airflow:${local.region}:${local.account_id}:environment/${var.name}"]
  }

  statement {
    sid       = "NoBucketListing"
    effect    = "Deny"
    actions   = ["s3:ListAllMyBuckets"]
    resources = [module.dag_bucket.arn, "${module.dag_bucket.arn}/*"]
  }

  statement {
    sid       = "ReadBundle"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    resources = [module.dag_bucket.arn, "${module.dag_bucket.arn}/*"]
  }

  statement {
    sid       = "CheckAccountPublicAccessBlock"
    actions   = ["s3:GetAccountPublicAccessBlock"]
    resources = ["*"]
  }

  statement {
    sid = "WriteAirflowLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:CreateLogGroup",
      "logs:PutLogEvents",
      "logs:GetLogEvents",
      "logs:GetLogRecord",
      "logs:GetLogGroupFields",
      "logs:GetQueryResults",
    ]
    resources = ["${local.arn.logs}:log-group:airflow-${var.name}-*"]
  }

  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }

  statement {
    sid       = "PublishMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["AmazonMWAA", "AWS/MWAA"]
    }
  }

  statement {
    sid = "UseCeleryQueues"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:SendMessage",
    ]
    # The Celery queues live in an account MWAA owns, hence the account wildcard.
    resources = ["arn:${local.partition}:sqs:${local.region}:*:airflow-celery-*"]
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    resources = [module.kms.key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"]
    }
  }

  # What the DAGs need.
  statement {
    sid       = "ReadSettings"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
    resources = ["${local.arn.ssm}:parameter${var.ssm_prefix}", "${local.arn.ssm}:parameter${var.ssm_prefix}/*"]
  }

  statement {
    sid     = "ReadAirflowSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    # The whole prefix rather than one secret: the backend looks up every connection id
    # a task asks for here first, and a denied lookup is an error, a missing one is not.
    resources = [
      "${local.arn.secretsmanager}:secret:${var.connections_prefix}/*",
      "${local.arn.secretsmanager}:secret:${var.variables_prefix}/*",
    ]
  }

  statement {
    sid       = "DecryptAirflowSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "ListDataBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.lake_bucket_arn, var.mlflow_bucket_arn]
  }

  statement {
    sid = "ReadWriteLakeAndArtifacts"
    # MLflow clients upload and download artifacts straight to and from S3.
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${var.lake_bucket_arn}/*", "${var.mlflow_bucket_arn}/*"]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.data_kms_key_arn]
  }

  statement {
    sid       = "UseTrackingServer"
    actions   = ["sagemaker-mlflow:*"]
    resources = [var.mlflow_tracking_server_arn]
  }

  statement {
    sid       = "DescribeTrackingServer"
    actions   = ["sagemaker:DescribeMlflowTrackingServer", "sagemaker:CreatePresignedMlflowTrackingServerUrl"]
    resources = [var.mlflow_tracking_server_arn]
  }

  statement {
    sid = "DeployAndScoreModels"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:ListTags",
      "sagemaker:CreateModel",
      "sagemaker:DescribeModel",
      "sagemaker:DeleteModel",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:DeleteEndpointConfig",
      "sagemaker:CreateEndpoint",
      "sagemaker:UpdateEndpoint",
      "sagemaker:DescribeEndpoint",
      "sagemaker:DeleteEndpoint",
      "sagemaker:InvokeEndpoint",
      "sagemaker:CreateTransformJob",
      "sagemaker:DescribeTransformJob",
      "sagemaker:StopTransformJob",
    ]
    # SageMaker lower-cases names in ARNs; the DAGs name everything of a use case after it.
    resources = flatten([
      for prefix in var.sagemaker_name_prefixes : [
        for kind in ["model", "endpoint-config", "endpoint", "transform-job"] :
        "${local.arn.sagemaker}:${kind}/${lower(prefix)}*"
      ]
    ])
  }

  statement {
    sid       = "PassExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [var.sagemaker_execution_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid       = "UseServingKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.serving_kms_key_arn]
  }

  statement {
    sid       = "GrantServingKeyToSageMaker"
    actions   = ["kms:CreateGrant"]
    resources = [var.serving_kms_key_arn]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  statement {
    sid       = "ReadServingAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [for prefix in var.sagemaker_name_prefixes : "${local.arn.cloudwatch}:alarm:${prefix}*"]
  }

  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alerts_topic_arn]
  }

  statement {
    sid       = "EncryptAlerts"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "mwaa-execution"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# MWAA environment
################################################################################

resource "aws_mwaa_environment" "this" {
  name               = var.name
  airflow_version    = var.airflow_version
  environment_class  = var.environment_class
  min_workers        = var.min_workers
  max_workers        = var.max_workers
  schedulers         = var.schedulers
  execution_role_arn = aws_iam_role.this.arn
  kms_key            = module.kms.key_arn

  source_bucket_arn                = module.dag_bucket.arn
  dag_s3_path                      = "dags/"
  requirements_s3_path             = aws_s3_object.requirements.key
  requirements_s3_object_version   = aws_s3_object.requirements.version_id
  startup_script_s3_path           = aws_s3_object.startup_script.key
  startup_script_s3_object_version = aws_s3_object.startup_script.version_id
  plugins_s3_path                  = local.has_plugins ? aws_s3_object.plugins[0].key : null
  plugins_s3_object_version        = local.has_plugins ? aws_s3_object.plugins[0].version_id : null
  airflow_configuration_options    = local.airflow_configuration_options
  webserver_access_mode            = var.webserver_access_mode
  weekly_maintenance_window_start  = var.weekly_maintenance_window_start
  tags                             = var.tags

  network_configuration {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = var.log_level
    }

    scheduler_logs {
      enabled   = true
      log_level = var.log_level
    }

    task_logs {
      enabled   = true
      log_level = var.log_level
    }

    webserver_logs {
      enabled   = true
      log_level = var.log_level
    }

    worker_logs {
      enabled   = true
      log_level = var.log_level
    }
  }

  # The environment must start with its bundle in place and a role that can read it.
  depends_on = [aws_iam_role_policy.this, aws_s3_object.bundle, aws_s3_object.constraints, aws_s3_object.airflowignore]
}
