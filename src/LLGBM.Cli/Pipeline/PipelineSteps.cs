namespace LLGBM.Cli.Pipeline;

/// <summary>
/// The two steps every pipeline stage is made of: an <c>llgbm</c> command run in process with its command line logged,
/// and a results file written once (kept when it exists, so an interrupted pipeline resumes).
/// </summary>
public static class PipelineSteps
{
    /// <summary>Runs <c>llgbm <paramref name="args"/></c> in this process, logging the command line; returns its exit code.</summary>
    public static int Llgbm(string[] args, TextWriter log)
    {
        log.WriteLine($"[pipeline]   llgbm {string.Join(' ', args)}");
        return LlgbmCommand.Run(args, log, log);
    }

    /// <summary>Says that <paramref name="path"/> is already there and kept; returns 0.</summary>
    public static int Kept(string path, TextWriter log)
    {
        log.WriteLine($"[pipeline]   {path} exists; kept");
        return 0;
    }

    /// <summary>
    /// Runs <paramref name="body"/>, which writes <paramref name="file"/>, unless the file is already there; its folder
    /// is created first. Returns 0 or the body's exit code.
    /// </summary>
    public static int Once(string file, TextWriter log, Func<string, int> body)
    {
        if (File.Exists(file))
            return Kept(file, log);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        return body(file);
    }

    /// <summary>
    /// Writes <paramref name="text"/> to <paramref name="path"/> atomically unless it already holds exactly that text
    /// (its folder created first); returns the path. The pipeline's effective configs are written this way.
    /// </summary>
    public static string WriteText(string path, string text)
    {
        if (File.Exists(path) && File.ReadAllText(path) == text)
            return path;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.WriteText(path, text);
        return path;
    }
}
