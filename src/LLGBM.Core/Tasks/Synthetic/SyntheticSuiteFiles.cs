using System.Text.Json;
using System.Text.Json.Nodes;

namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Writes the synthetic suite to disk: one task directory per task under a root, and <c>suite.json</c> listing the
/// tasks (domain, family, parameter), the mixtures and the splits.
/// </summary>
public static class SyntheticSuiteFiles
{
    /// <summary>The suite description file in the root.</summary>
    public const string ManifestName = "suite.json";

    /// <summary>
    /// Writes every task of the suite under <paramref name="root"/> (<c>root/NAME/</c>) and <c>suite.json</c> last,
    /// so a root with a manifest is complete. Returns the tasks.
    /// </summary>
    public static IReadOnlyList<TaskData> Write(string root, SyntheticSuiteSettings settings)
    {
        var tasks = SyntheticSuite.Build(settings);
        Directory.CreateDirectory(root);
        foreach (var task in tasks)
            TaskDirectory.Save(Path.Combine(root, task.Spec.Name), task);
        var manifest = Manifest(settings, tasks).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteText(Path.Combine(root, ManifestName), manifest + "\n");
        return tasks;
    }

    /// <summary>The settings a suite root was written with, or null when it has no (readable) manifest.</summary>
    public static SyntheticSuiteSettings? ReadSettings(string root)
    {
        var path = Path.Combine(root, ManifestName);
        if (!File.Exists(path))
            return null;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            if ((int?)json["version"] != SyntheticSuite.Version)
                return null;
            return new SyntheticSuiteSettings
            {
                Seed = (long)json["seed"]!,
                TrainCount = (int)json["train_count"]!,
                TestCount = (int)json["test_count"]!,
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new LlgbmException($"{path}: not a synthetic suite manifest ({e.Message}).", e);
        }
    }

    /// <summary>The splits named in a suite root's manifest.</summary>
    public static IReadOnlyList<SuiteSplit> ReadSplits(string root)
    {
        var path = Path.Combine(root, ManifestName);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        return json["splits"]!.AsArray().Select(s => new SuiteSplit(
            (string)s!["name"]!,
            (string)s["description"]!,
            s["train"]!.AsArray().Select(n => (string)n!).ToList(),
            s["test"]!.AsArray().Select(n => (string)n!).ToList())).ToList();
    }

    static JsonObject Manifest(SyntheticSuiteSettings settings, IReadOnlyList<TaskData> tasks)
    {
        var families = SyntheticSuite.Tasks().ToDictionary(t => t.Name);
        var taskList = new JsonArray();
        foreach (var task in tasks)
        {
            var entry = new JsonObject
            {
                ["name"] = task.Spec.Name,
                ["domain"] = task.Spec.Domain,
                ["kind"] = TaskDirectory.KindName(task.Spec.Kind),
            };
            if (families.TryGetValue(task.Spec.Name, out var synthetic) && synthetic.Family is not null)
            {
                entry["family"] = synthetic.Family;
                entry["parameter"] = synthetic.FamilyParameter;
            }
            if (task.Spec.Components.Count > 0)
                entry["components"] = new JsonArray(task.Spec.Components.Select(c => (JsonNode)c).ToArray());
            taskList.Add(entry);
        }
        var splits = new JsonArray();
        foreach (var split in SyntheticSuite.Splits())
        {
            splits.Add(new JsonObject
            {
                ["name"] = split.Name,
                ["description"] = split.Description,
                ["train"] = new JsonArray(split.Train.Select(n => (JsonNode)n).ToArray()),
                ["test"] = new JsonArray(split.Test.Select(n => (JsonNode)n).ToArray()),
            });
        }
        return new JsonObject
        {
            ["version"] = SyntheticSuite.Version,
            ["seed"] = settings.Seed,
            ["train_count"] = settings.TrainCount,
            ["test_count"] = settings.TestCount,
            ["tasks"] = taskList,
            ["splits"] = splits,
        };
    }
}
