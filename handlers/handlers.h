/* Every handler, one file per API resource. A handler validates its input, calls the engine and
 * writes the response; it keeps no state. */
#ifndef AUGSERVE_HANDLERS_H
#define AUGSERVE_HANDLERS_H

struct eng_error;
struct img;
struct job;
struct model;
struct request;
struct response;

/* system.c */
void handle_healthz(struct request *req, struct response *resp);
void handle_readyz(struct request *req, struct response *resp);
void handle_metrics(struct request *req, struct response *resp);
void handle_v1_info(struct request *req, struct response *resp);

/* openapi.c */
void handle_openapi(struct request *req, struct response *resp);

/* augment.c */
void handle_augment(struct request *req, struct response *resp);

/* augment_audio.c: audio policies on clips, giving waveforms, log-mel features or their image. */
void handle_augment_audio(struct request *req, struct response *resp);

/* copy_paste.c: Simple Copy-Paste of one image's objects onto another. */
void handle_copy_paste(struct request *req, struct response *resp);

/* predict.c: image classification with a model of the repository (server/models.h). */
void handle_predict(struct request *req, struct response *resp);
void handle_pseudo_label(struct request *req, struct response *resp);

/* similarity.c: SSIM, MS-SSIM, PSNR, L2 and LPIPS between images (engine/metrics/metric.h). */
void handle_similarity(struct request *req, struct response *resp);
void handle_similarity_batch(struct request *req, struct response *resp);
void handle_similarity_2afc(struct request *req, struct response *resp);

/* ops.c */
void handle_ops(struct request *req, struct response *resp);

/* policies.c */
void handle_policies(struct request *req, struct response *resp);
void handle_policy_get(struct request *req, struct response *resp);
void handle_policy_validate(struct request *req, struct response *resp);
void handle_policy_create(struct request *req, struct response *resp);
void handle_policy_put(struct request *req, struct response *resp);
void handle_policy_delete(struct request *req, struct response *resp);

/* ctaugment.c: CTAugment states (engine/policy/policy.h's CTAugment section, their records
 * server/ctaugment_store.h): create, draw strong views and probes, feedback, show, list, delete. */
void handle_ctaugment_create(struct request *req, struct response *resp);
void handle_ctaugment_list(struct request *req, struct response *resp);
void handle_ctaugment_get(struct request *req, struct response *resp);
void handle_ctaugment_delete(struct request *req, struct response *resp);
void handle_ctaugment_augment(struct request *req, struct response *resp);
void handle_ctaugment_probe(struct request *req, struct response *resp);
void handle_ctaugment_feedback(struct request *req, struct response *resp);

/* kserve.c: the KServe Open Inference Protocol v2 (REST; JSON and binary tensors). */
void handle_v2_info(struct request *req, struct response *resp);
void handle_v2_live(struct request *req, struct response *resp);
void handle_v2_ready(struct request *req, struct response *resp);
void handle_v2_model(struct request *req, struct response *resp);
void handle_v2_model_ready(struct request *req, struct response *resp);
void handle_v2_infer(struct request *req, struct response *resp);

/* models.c: the model repository (GET, POST and DELETE /v1/models). */
void handle_models_list(struct request *req, struct response *resp);
void handle_model_get(struct request *req, struct response *resp);
void handle_model_upload(struct request *req, struct response *resp);
void handle_model_delete(struct request *req, struct response *resp);

/* static_files.c (server/) */
void handle_static(struct request *req, struct response *resp);
/* The Content-Type for a file name's extension (application/octet-stream when unknown). */
const char *static_content_type(const char *path);

/* jobs.c: the job system's API (server/jobs.h). */
void handle_jobs_create(struct request *req, struct response *resp);
void handle_jobs_list(struct request *req, struct response *resp);
void handle_job_get(struct request *req, struct response *resp);
void handle_job_cancel(struct request *req, struct response *resp);
void handle_job_artifacts(struct request *req, struct response *resp);
void handle_job_artifact(struct request *req, struct response *resp);
/* The job of the path's {id} into *job, when req's key may see it: 0, or -1 with the answer
 * written (404 for another key's job too, which is not told apart from none). */
int job_of_request(struct request *req, struct response *resp, struct job *job);
/* datasets.c: datasets, their imports (jobs), splits and thumbnails (server/dataset_import.h). */
void handle_datasets_create(struct request *req, struct response *resp);
void handle_datasets_list(struct request *req, struct response *resp);
void handle_dataset_get(struct request *req, struct response *resp);
void handle_dataset_split(struct request *req, struct response *resp);
void handle_dataset_images(struct request *req, struct response *resp);
void handle_dataset_delete(struct request *req, struct response *resp);
/* job_events.c: a job's events as Server-Sent Events. */
void handle_job_events(struct request *req, struct response *resp);

/* debug.c: mounted only with debug_routes, for tests of the server's own machinery. */
void handle_debug_sleep(struct request *req, struct response *resp);
void handle_debug_echo(struct request *req, struct response *resp);

#endif
