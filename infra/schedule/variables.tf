variable "project" {
  type        = string
  description = "GCP project"
}

variable "region" {
  type        = string
  description = "Region of the Dataflow job, the scheduler and the image repository"
  default     = "us-central1"
}

variable "bucket" {
  type        = string
  description = "Bucket for the template spec, temp files and the stems"
}

variable "input_bucket" {
  type        = string
  description = "Bucket the catalog is read from"
}

variable "input" {
  type        = string
  description = "Input glob(s), e.g. gs://catalog/**/*.flac"
}

variable "output_prefix" {
  type        = string
  description = "Prefix of the stems in the bucket"
  default     = "stems"
}

variable "model" {
  type        = string
  description = "Model name or gs:// path (umxl is non-commercial)"
  default     = "umxhq"
}

variable "codec" {
  type    = string
  default = "flac"
}

variable "parameters" {
  type        = map(string)
  description = "More template parameters, e.g. { batch_frames = \"4800\", batch_seconds = \"1800\", niter = \"1\" }"
  default     = {}
}

variable "repository" {
  type        = string
  description = "Artifact Registry repository of the worker image"
  default     = "umx"
}

variable "image" {
  type        = string
  description = "Worker image built by infra/dataflow/build.sh"
}

variable "machine_type" {
  type        = string
  description = "Worker machine: g2-standard-8 (L4) or n1-standard-8 (with a T4, see accelerator)"
  default     = "g2-standard-8"
}

variable "accelerator" {
  type        = string
  description = "Worker GPU: type:nvidia-l4;count:1;install-nvidia-driver with g2-standard-*, type:nvidia-tesla-t4;count:1;install-nvidia-driver with n1-standard-*, or \"\" for CPU workers (e.g. n2d-standard-2)"
  default     = "type:nvidia-l4;count:1;install-nvidia-driver"
}

variable "max_workers" {
  type    = number
  default = 10
}

variable "schedule" {
  type        = string
  description = "Cron schedule"
  default     = "0 3 * * *"
}

variable "time_zone" {
  type    = string
  default = "Etc/UTC"
}
