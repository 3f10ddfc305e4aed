# A Cloud Scheduler job that launches the catalog flex template on a cron schedule.
# Each run separates only what is new or failed: the job skips tracks whose separation.json
# matches the model and parameters (see README, "The catalog job").

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

# The identity Cloud Scheduler calls the Dataflow API with.
resource "google_service_account" "launcher" {
  account_id   = "umx-catalog-launcher"
  display_name = "Launches the umx catalog flex template"
}

# The identity the Dataflow workers run as: reads inputs, writes stems.
resource "google_service_account" "worker" {
  account_id   = "umx-catalog-worker"
  display_name = "umx catalog Dataflow workers"
}

# Least privilege: the launcher may create Dataflow jobs and act as the worker account, nothing else.
resource "google_project_iam_member" "launcher_dataflow" {
  project = var.project
  role    = "roles/dataflow.developer"
  member  = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_service_account_iam_member" "launcher_acts_as_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.launcher.email}"
}

# The launcher reads the template spec from the bucket.
resource "google_storage_bucket_iam_member" "launcher_reads_templates" {
  bucket = var.bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.launcher.email}"
}

# Workers: run Dataflow work items, read the catalog, write stems and staging files, pull the image.
resource "google_project_iam_member" "worker_dataflow" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_reads_catalog" {
  bucket = var.input_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_writes_output" {
  bucket = var.bucket
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_artifact_registry_repository_iam_member" "worker_pulls_image" {
  location   = var.region
  repository = var.repository
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_cloud_scheduler_job" "catalog" {
  name        = "umx-separate-catalog"
  description = "Separate new tracks of the catalog into stems"
  schedule    = var.schedule
  time_zone   = var.time_zone
  region      = var.region

  http_target {
    http_method = "POST"
    uri         = "https://dataflow.googleapis.com/v1b3/projects/${var.project}/locations/${var.region}/flexTemplates:launch"
    headers     = { "Content-Type" = "application/json" }
    body = base64encode(jsonencode({
      launchParameter = {
        jobName              = "umx-separate-catalog"
        containerSpecGcsPath = "gs://${var.bucket}/templates/umx-separate-catalog.json"
        parameters = merge({
          input  = var.input
          output = "gs://${var.bucket}/${var.output_prefix}"
          model  = var.model
          codec  = var.codec
        }, var.parameters)
        environment = {
          serviceAccountEmail  = google_service_account.worker.email
          tempLocation         = "gs://${var.bucket}/tmp"
          machineType          = var.machine_type
          maxWorkers           = var.max_workers
          # GPU workers: one SDK process (TensorFlow takes the GPU) and the accelerator, a Dataflow
          # service option as Beam's --dataflow_service_options; CPU workers (accelerator ""):
          # Dataflow's default of one process per vCPU
          additionalExperiments     = var.accelerator == "" ? [] : ["no_use_multiple_sdk_containers"]
          additionalPipelineOptions = var.accelerator == "" ? [] : ["dataflow_service_options=worker_accelerator=${var.accelerator}"]
          sdkContainerImage    = var.image
        }
      }
    }))
    oauth_token {
      service_account_email = google_service_account.launcher.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}
