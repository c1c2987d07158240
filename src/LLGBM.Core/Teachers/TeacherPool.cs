using System.Diagnostics;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Evaluation;
using LLGBM.Lora;
using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Teachers;

/// <summary>What to train with <see cref="TeacherPool.Train"/>.</summary>
public sealed record TeacherPoolSettings
{
    /// <summary>The base model's checkpoint directory.</summary>
    public required string BaseModel { get; init; }

    /// <summary>Root of the task directories.</summary>
    public required string TasksRoot { get; init; }

    /// <summary>The pool's root: <c>TASK/step-NNNNN/</c> adapters, <c>TASK/teacher.json</c>, <c>manifest.json</c>.</summary>
    public required string Output { get; init; }

    /// <summary>How each teacher is trained.</summary>
    public TeacherTrainingSettings Training { get; init; } = new();

    /// <summary>Only these tasks (all when null).</summary>
    public IReadOnlyList<string>? Tasks { get; init; }

    /// <summary>This process's shard, 0-based (tasks in name order are dealt round-robin to shards).</summary>
    public int ShardIndex { get; init; }

    /// <summary>The number of shards.</summary>
    public int ShardCount { get; init; } = 1;

    /// <summary>
    /// Teachers trained together in one batched pass (<see cref="TeacherTrainer.TrainBatched"/>); 1 trains them one at a
    /// time. Either way each teacher follows its own run, up to floating-point rounding.
    /// </summary>
    public int TeachersAtOnce { get; init; } = 1;
}

/// <summary>
/// Trains the teacher pool: for every task of this shard, a teacher LoRA with adapters kept along its tail, each
/// saved as a PEFT directory and scored on the task's test set; then <c>TASK/teacher.json</c>, and finally the
/// pool's <c>manifest.json</c> merged from every task done so far (by any shard). Tasks whose <c>teacher.json</c>
/// matches the settings and base model are skipped, so an interrupted run resumes where it stopped; shards share
/// nothing but the output directory.
/// </summary>
public static class TeacherPool
{
    /// <summary>The per-task manifest file.</summary>
    public const string TaskManifestName = "teacher.json";

    /// <summary>The pool manifest file.</summary>
    public const string ManifestName = "manifest.json";

    /// <summary>Trains this shard's tasks; returns the manifests of this shard's tasks (trained now or before).</summary>
    public static IReadOnlyList<TeacherTaskManifest> Train(
        TeacherPoolSettings settings, Action<TeacherProgress>? progress = null, Action<string>? log = null)
    {
        settings.Training.Validate();
        if (settings.ShardCount <= 0 || settings.ShardIndex < 0 || settings.ShardIndex >= settings.ShardCount)
            throw new LlgbmException($"--shard {settings.ShardIndex}/{settings.ShardCount}: expected i/n with 0 ≤ i < n.");
        if (settings.TeachersAtOnce <= 0)
            throw new LlgbmException($"--at-once {settings.TeachersAtOnce}: expected a positive number of teachers.");
        var all = TaskSuite.LoadAll(settings.TasksRoot);
        if (settings.Tasks is { } names)
        {
            var unknown = names.Where(n => all.All(t => t.Spec.Name != n)).ToList();
            if (unknown.Count > 0)
                throw new LlgbmException($"{settings.TasksRoot}: no task named {string.Join(", ", unknown)}.");
            all = all.Where(t => names.Contains(t.Spec.Name)).ToList();
        }
        var mine = all.Where((_, i) => i % settings.ShardCount == settings.ShardIndex).ToList();
        var baseHash = ContentHash.OfCheckpoint(settings.BaseModel);
        var key = settings.Training.Key();
        Directory.CreateDirectory(settings.Output);

        var manifests = new List<TeacherTaskManifest>();
        var todo = new List<TaskData>();
        foreach (var task in mine)
        {
            if (ReadTaskManifest(settings.Output, task.Spec.Name) is { } done && done.Settings == key && done.BaseModel == baseHash)
            {
                log?.Invoke($"{task.Spec.Name}: done before, skipped");
                manifests.Add(done);
            }
            else
            {
                todo.Add(task);
            }
        }

        if (todo.Count > 0)
        {
            using var model = Qwen2Checkpoint.Load(settings.BaseModel, settings.Training.Device);
            var tokenizer = Tokenizers.Load(settings.BaseModel);
            // Batched teachers share one padded length, so tasks of similar lengths are put together.
            var order = settings.TeachersAtOnce == 1
                ? todo
                : [.. todo
                    .OrderBy(t => t.Train.Count == 0 ? 0 : t.Train.Average(e => e.Prompt.Length + e.Answer.Length))
                    .ThenBy(t => t.Spec.Name, StringComparer.Ordinal)];
            foreach (var chunk in order.Chunk(settings.TeachersAtOnce))
                manifests.AddRange(TrainTasks(settings, model, tokenizer, chunk, key, baseHash, progress, log));
        }
        WriteManifest(settings.Output);
        return manifests.OrderBy(m => m.Task, StringComparer.Ordinal).ToList();
    }

    /// <summary>Rebuilds <c>manifest.json</c> from every <c>TASK/teacher.json</c> under <paramref name="output"/>.</summary>
    public static IReadOnlyList<TeacherTaskManifest> WriteManifest(string output)
    {
        var manifests = Directory.EnumerateDirectories(output)
            .Select(d => ReadTaskManifest(output, Path.GetFileName(d)))
            .Where(m => m is not null)
            .Select(m => m!)
            .OrderBy(m => m.Task, StringComparer.Ordinal)
            .ToList();
        var json = JsonSerializer.Serialize(new { teachers = manifests }, TeacherTaskManifest.JsonOptions);
        AtomicFile.WriteText(Path.Combine(output, ManifestName), json + "\n");
        return manifests;
    }

    /// <summary>Every kept adapter listed in the pool's <c>manifest.json</c>.</summary>
    public static IReadOnlyList<TeacherTaskManifest> ReadManifest(string output)
    {
        var path = Path.Combine(output, ManifestName);
        try
        {
            using var doc = JsonDocument.Parse(TextFiles.ReadAllText(path));
            var manifests = doc.RootElement.GetProperty("teachers").Deserialize<List<TeacherTaskManifest>>(TeacherTaskManifest.JsonOptions)!;
            // Adapter paths are joined to the pool's root: each must stay inside it.
            foreach (var checkpoint in manifests.SelectMany(m => m.Checkpoints))
                PathNames.ValidateRelative(checkpoint.Adapter, $"the adapter of {checkpoint.Task} at step {checkpoint.Step}", path);
            return manifests;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or IOException or InvalidOperationException)
        {
            throw new LlgbmException($"{path}: not a teacher pool manifest ({e.Message}).", e);
        }
    }

    // Trains the tasks of one chunk (one at a time, or batched when there are several) and writes their records.
    static IReadOnlyList<TeacherTaskManifest> TrainTasks(
        TeacherPoolSettings settings, Model.Qwen2ForCausalLM model, ITokenizer tokenizer, IReadOnlyList<TaskData> tasks, string key,
        string baseHash, Action<TeacherProgress>? progress, Action<string>? log)
    {
        var recorders = tasks.Select(t => new TaskRecorder(settings, model, tokenizer, t, log)).ToList();
        var evaluation = new Stopwatch();
        var watch = Stopwatch.StartNew();
        void Keep(int t, int step, LoraSet adapter, double loss)
        {
            evaluation.Start();
            recorders[t].Keep(step, adapter, loss);
            evaluation.Stop();
        }
        if (tasks.Count == 1)
            TeacherTrainer.Train(model, tokenizer, tasks[0], settings.Training, (step, adapter, loss) => Keep(0, step, adapter, loss), progress);
        else
            TeacherTrainer.TrainBatched(model, tokenizer, tasks, settings.Training, Keep, progress);
        // Batched teachers share their training time equally.
        var seconds = (watch.Elapsed.TotalSeconds - evaluation.Elapsed.TotalSeconds) / tasks.Count;
        return [.. recorders.Select(r => r.Finish(key, baseHash, seconds))];
    }

    // One task's part of the pool: its folder emptied of earlier runs, each kept adapter saved (atomically) and scored,
    // and finally its teacher.json.
    sealed class TaskRecorder
    {
        readonly TeacherPoolSettings settings;
        readonly Model.Qwen2ForCausalLM model;
        readonly ITokenizer tokenizer;
        readonly TaskData task;
        readonly Action<string>? log;
        readonly string taskDir;
        readonly List<TeacherCheckpoint> checkpoints = [];

        public TaskRecorder(TeacherPoolSettings settings, Model.Qwen2ForCausalLM model, ITokenizer tokenizer, TaskData task, Action<string>? log)
        {
            (this.settings, this.model, this.tokenizer, this.task, this.log) = (settings, model, tokenizer, task, log);
            taskDir = Path.Combine(settings.Output, task.Spec.Name);
            Directory.CreateDirectory(taskDir);
            // A task is retrained whole: its record goes first, then adapters of earlier runs (other steps or settings).
            File.Delete(Path.Combine(taskDir, TaskManifestName));
            foreach (var stale in Directory.EnumerateDirectories(taskDir, "*step-*"))
                Directory.Delete(stale, recursive: true);
        }

        public void Keep(int step, LoraSet adapter, double loss)
        {
            var name = task.Spec.Name;
            var relative = Path.Combine(name, $"step-{step:D5}");
            var final = Path.Combine(settings.Output, relative);
            var temp = Path.Combine(taskDir, $".step-{step:D5}.tmp");
            if (Directory.Exists(temp))
                Directory.Delete(temp, recursive: true);
            PeftAdapter.Save(temp, settings.Training.Lora, adapter, Path.GetFullPath(settings.BaseModel));
            if (Directory.Exists(final))
                Directory.Delete(final, recursive: true);
            Directory.Move(temp, final);
            var evaluated = new Qwen2EvaluatedModel(model, Path.GetFileName(Path.GetFullPath(settings.BaseModel)), adapter, relative);
            var result = TaskEvaluator.Evaluate(evaluated, tokenizer, task, new EvaluationOptions
            {
                Format = PromptFormat.Bare,
                Limit = settings.Training.EvaluationLimit,
                BatchSize = 64,
            });
            checkpoints.Add(new TeacherCheckpoint(
                name, task.Spec.Domain, step, settings.Training.Seed, loss, result.Accuracy, result.N, relative,
                ContentHash.OfFile(Path.Combine(final, PeftAdapter.WeightsFileName)),
                ContentHash.OfFile(Path.Combine(final, PeftAdapter.ConfigFileName))));
            log?.Invoke($"{name}: step {step}, train loss {loss:F4}, test accuracy {result.Accuracy:P1}");
        }

        public TeacherTaskManifest Finish(string key, string baseHash, double seconds)
        {
            var manifest = new TeacherTaskManifest(task.Spec.Name, key, baseHash, seconds, checkpoints);
            AtomicFile.WriteText(
                Path.Combine(taskDir, TaskManifestName), JsonSerializer.Serialize(manifest, TeacherTaskManifest.JsonOptions) + "\n");
            return manifest;
        }
    }

    static TeacherTaskManifest? ReadTaskManifest(string output, string task)
    {
        var path = Path.Combine(output, task, TaskManifestName);
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonSerializer.Deserialize<TeacherTaskManifest>(File.ReadAllText(path), TeacherTaskManifest.JsonOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
