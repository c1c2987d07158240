namespace LLGBM.Tasks;

/// <summary>
/// Placeholder for the task directory loader being written on another branch; it is replaced by the real
/// implementation at merge and only lets the evaluation command compile here.
/// </summary>
public static class TaskSuite
{
    /// <summary>Every task under a root directory (not available yet: always throws).</summary>
    public static IReadOnlyList<TaskData> LoadAll(string root) =>
        throw new LlgbmException($"Loading the tasks under {root}: task loading is not available yet in this build.");
}
