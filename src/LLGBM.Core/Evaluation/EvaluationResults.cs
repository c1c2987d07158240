using System.Text.Json;
using LLGBM.Checkpoints;

namespace LLGBM.Evaluation;

/// <summary>Result files: a JSON array of <see cref="TaskEvaluation"/> objects, one per task and prompt format.</summary>
public static class EvaluationResults
{
    /// <summary>The results as a JSON array.</summary>
    public static string ToJson(IReadOnlyList<TaskEvaluation> results) => JsonSerializer.Serialize(results, TaskEvaluation.JsonOptions);

    /// <summary>Writes the results to <paramref name="path"/> atomically (the file holds either the old or the whole new content).</summary>
    public static void Write(string path, IReadOnlyList<TaskEvaluation> results)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(results, TaskEvaluation.JsonOptions);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
            Directory.CreateDirectory(directory);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>Reads a results file written by <see cref="Write"/>.</summary>
    public static IReadOnlyList<TaskEvaluation> Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<List<TaskEvaluation>>(File.ReadAllBytes(path), TaskEvaluation.JsonOptions)
                ?? throw new LlgbmException($"{path}: expected a JSON array of task evaluations, found null.");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not a JSON array of task evaluations ({e.Message}).", e);
        }
    }
}
