using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLGBM.Teachers;

/// <summary>One kept teacher adapter.</summary>
/// <param name="Task">The task it was trained on.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Step">The training step it was kept at.</param>
/// <param name="Seed">The training seed (combined with the task name for the run's own seed).</param>
/// <param name="TrainLoss">Mean training loss of the steps since the previous kept adapter.</param>
/// <param name="TestAccuracy">Accuracy on the task's test examples, bare prompts, with this adapter.</param>
/// <param name="TestCount">Test examples scored.</param>
/// <param name="Adapter">The PEFT adapter directory, relative to the pool's root.</param>
/// <param name="AdapterSha256">SHA-256 of <c>adapter_model.safetensors</c>.</param>
/// <param name="ConfigSha256">SHA-256 of <c>adapter_config.json</c>.</param>
public sealed record TeacherCheckpoint(
    string Task, string Domain, int Step, long Seed, double TrainLoss, double TestAccuracy, int TestCount,
    string Adapter, string AdapterSha256, string ConfigSha256);

/// <summary>The teachers of one task (<c>TASK/teacher.json</c>); its presence marks the task as done.</summary>
/// <param name="Task">The task.</param>
/// <param name="Settings">The training settings' key (<see cref="TeacherTrainingSettings.Key"/>).</param>
/// <param name="BaseModel">Content hash of the base checkpoint.</param>
/// <param name="TrainingSeconds">Wall time of training (checkpoint evaluation excluded).</param>
/// <param name="Checkpoints">The kept adapters, in step order.</param>
public sealed record TeacherTaskManifest(string Task, string Settings, string BaseModel, double TrainingSeconds, IReadOnlyList<TeacherCheckpoint> Checkpoints)
{
    /// <summary>JSON options of the manifests (snake_case, indented).</summary>
    public static JsonSerializerOptions JsonOptions => LlgbmJson.Options;
}
