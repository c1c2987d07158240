using System.Diagnostics;
using System.Globalization;

namespace LLGBM.Cli.Pipeline;

/// <summary>One <c>llgbm</c> command line to run as a child process, with the name its output lines are tagged with.</summary>
/// <param name="Name">A short name (e.g. the run directory's name); also the name of its log file.</param>
/// <param name="Args">The command line, without the program.</param>
public sealed record LlgbmJob(string Name, string[] Args);

/// <summary>
/// Runs independent <c>llgbm</c> commands as child processes, <c>jobs</c> at a time, each limited to its share of the
/// cores (OMP_NUM_THREADS and MKL_NUM_THREADS). On a small CPU, two single-threaded trainings finish sooner than the
/// same two one after the other with two threads each, because the tiny models' matrix products do not keep two
/// threads busy. Every line a child writes is echoed with its name in brackets and kept in <c>LOGS/NAME.log</c>.
/// </summary>
public sealed class LlgbmProcesses(int jobs, string logs, TextWriter log)
{
    readonly Lock gate = new();

    /// <summary>The number of commands run at once.</summary>
    public int Jobs { get; } = jobs >= 1 ? jobs : throw new LlgbmException($"--jobs must be at least 1 (found {jobs}).");

    /// <summary>Threads each child may use: the cores divided among the jobs, at least one.</summary>
    public int ThreadsPerJob => Math.Max(1, Environment.ProcessorCount / Jobs);

    /// <summary>
    /// Runs every job, at most <see cref="Jobs"/> at once, in the given order; after a failure no new job starts and
    /// the running ones finish. Returns 0, or the exit code of the first job (in order) that failed.
    /// </summary>
    public int RunAll(IReadOnlyList<LlgbmJob> all)
    {
        Directory.CreateDirectory(logs);
        var codes = new int[all.Count];
        var next = -1;
        var failed = 0;
        void Worker()
        {
            while (Volatile.Read(ref failed) == 0 && Interlocked.Increment(ref next) is var i && i < all.Count)
            {
                codes[i] = RunOne(all[i]);
                if (codes[i] != 0)
                    Interlocked.Exchange(ref failed, 1);
            }
        }
        var workers = Enumerable.Range(0, Math.Min(Jobs, all.Count)).Select(_ => new Thread(Worker) { IsBackground = true }).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        return codes.FirstOrDefault(c => c != 0);
    }

    int RunOne(LlgbmJob job)
    {
        var (program, prefix) = Program();
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in prefix.Concat(job.Args))
            info.ArgumentList.Add(a);
        var threads = ThreadsPerJob.ToString(CultureInfo.InvariantCulture);
        info.Environment["OMP_NUM_THREADS"] = threads;
        info.Environment["MKL_NUM_THREADS"] = threads;
        Write($"[{job.Name}] llgbm {string.Join(' ', job.Args)}");
        var logPath = Path.Combine(logs, job.Name + ".log");
        using var file = new StreamWriter(logPath, append: false) { AutoFlush = true };
        using var process = Process.Start(info) ?? throw new LlgbmException($"could not start {program} for {job.Name}.");
        void Echo(string? line)
        {
            if (line is null)
                return;
            lock (gate)
            {
                file.WriteLine(line);
                log.WriteLine($"[{job.Name}] {line}");
            }
        }
        process.OutputDataReceived += (_, e) => Echo(e.Data);
        process.ErrorDataReceived += (_, e) => Echo(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.WaitForExit();
        if (process.ExitCode != 0)
            Write($"[{job.Name}] failed with exit code {process.ExitCode}; its output is in {logPath}");
        return process.ExitCode;
    }

    void Write(string line)
    {
        lock (gate)
            log.WriteLine(line);
    }

    // How to start this same llgbm: the apphost itself, or the dotnet host with the llgbm assembly.
    static (string Program, string[] Prefix) Program()
    {
        var self = Environment.ProcessPath;
        var assembly = typeof(LlgbmCommand).Assembly.Location;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == Path.GetFileNameWithoutExtension(assembly))
            return (self, []);
        var host = self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        return (host, [assembly]);
    }
}
