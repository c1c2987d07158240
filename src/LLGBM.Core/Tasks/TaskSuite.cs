namespace LLGBM.Tasks;

/// <summary>A collection of task directories under one root (e.g. the synthetic suite or a set of imported datasets).</summary>
public static class TaskSuite
{
    /// <summary>
    /// Loads every task directory (a directory holding <c>task.json</c>) directly under <paramref name="root"/>, or
    /// deeper when grouped in subdirectories, sorted by task name (ordinal).
    /// </summary>
    /// <exception cref="TaskFormatException">
    /// <paramref name="root"/> does not exist, a task directory is malformed, or two tasks have the same name.
    /// </exception>
    public static IReadOnlyList<TaskData> LoadAll(string root)
    {
        if (!Directory.Exists(root))
            throw new TaskFormatException(root, "no such directory (expected a directory of task directories).");
        var tasks = new List<(string Directory, TaskData Task)>();
        foreach (var directory in Directory.EnumerateFiles(root, TaskDirectory.SpecFileName, SearchOption.AllDirectories)
                     .Select(spec => Path.GetDirectoryName(spec)!)
                     .Order(StringComparer.Ordinal))
            tasks.Add((directory, TaskDirectory.Load(directory)));
        var duplicate = tasks.GroupBy(t => t.Task.Spec.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new TaskFormatException(root,
                $"two task directories name the task '{duplicate.Key}': {string.Join(" and ", duplicate.Select(t => $"'{t.Directory}'"))}; " +
                $"task names must be unique.");
        return [.. tasks.OrderBy(t => t.Task.Spec.Name, StringComparer.Ordinal).Select(t => t.Task)];
    }
}
