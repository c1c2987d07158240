using System.Diagnostics;
using System.Text.Json.Nodes;
using LLGBM.Experiments;
using LLGBM.Generators;

namespace LLGBM.Cli.Pipeline;

/// <summary>
/// Runs the whole experiment through the <c>llgbm</c> commands, in order: the synthetic suite, the base model, its
/// evaluation, the teacher pool, the delta cache, the delta-quality check, every generator run, retrieval and merging on
/// the held-out tasks, the task mixtures, robustness and low data, cross-backbone transfer, the delta studies, the
/// generator benchmark, and the paper scripts. Every stage reuses what is already there (the commands skip finished
/// work; results files already written are kept), so an interrupted pipeline resumes. With <paramref name="jobs"/>
/// above 1, the teacher pool (in shards) and the generator runs (the main, low-data and transfer runs) go to that many
/// child processes at once (see <see cref="LlgbmProcesses"/>), their logs kept under <c>ROOT/logs</c>; with 1, every
/// command runs in this process.
/// </summary>
public sealed class PipelineRunner(PipelinePlan plan, string root, string paper, string repository, TextWriter log, bool runScripts, int jobs = 1)
{
    readonly Stopwatch clock = Stopwatch.StartNew();

    readonly RunsLayout layout = new(root);

    readonly LlgbmProcesses processes = new(jobs, new RunsLayout(root).Logs, log);

    string Suite => layout.Suite;

    string Base => layout.Base;

    string Teachers => layout.Teachers;

    string Deltas => layout.Deltas;

    /// <summary>Runs every stage; returns 0, or the exit code of the first command that failed.</summary>
    public int Run()
    {
        Directory.CreateDirectory(root);
        var stages = new List<(string Name, Func<int> Body)>
        {
            ("synthetic suite", () => Llgbm(["tasks", "synth", "--out", Suite, .. plan.SuiteArgs])),
            ("base model", () => Llgbm(["base", "pretrain", "--out", Base, .. plan.PretrainArgs])),
            ("base model evaluation", () => Once(layout.BaseEvaluation, file =>
                Llgbm(["eval", "--model", Base, "--tasks", Suite, "--limit", plan.Quick ? "10" : "100", "--out", file]))),
            ("teacher pool", TeacherPool),
            ("delta cache", () => Llgbm(["deltas", "compute", "--base", Base, "--teachers", Teachers, "--out", Deltas])),
            ("delta quality", () => Once(layout.Study("delta-quality"), file =>
                Llgbm(["eval", "deltas", "--base", Base, "--teachers", Teachers, "--tasks", Suite, "--cache", Deltas, "--out", file]))),
            ("generators", Generators),
            ("retrieval and merging", Retrieval),
            ("task mixtures", () => MixturesStage.Run(plan, root, log)),
            ("robustness and low data", () => RobustnessStage.Run(plan, root, repository, log, RunJobs)),
            ("cross-backbone transfer", () => new TransferStage(plan, root, repository, log, RunJobs).Run()),
            ("delta studies", () => DeltaStudyStage.Run(plan, root, log)),
            ("generator benchmark", () => Once(layout.Bench("generator"), file => Capture(file,
                ["bench", "generator", "--runs", root, "--config", ConfigPath("dnd-weight"), "--config", ConfigPath("multitask"), "--json",
                    .. plan.BenchArgs]))),
            ("paper tables and figures", Scripts),
        };
        for (var i = 0; i < stages.Count; i++)
        {
            var (name, body) = stages[i];
            log.WriteLine($"[pipeline] {i + 1}/{stages.Count} {name} ({clock.Elapsed:hh\\:mm\\:ss})");
            var code = body();
            if (code != 0)
            {
                log.WriteLine($"[pipeline] stopped: {name} failed with exit code {code}; rerun the same command to resume.");
                return code;
            }
        }
        log.WriteLine($"[pipeline] done in {clock.Elapsed:hh\\:mm\\:ss}; results under {root}, tables under {paper}");
        return 0;
    }

    int Llgbm(string[] args) => PipelineSteps.Llgbm(args, log);

    int Once(string file, Func<string, int> body) => PipelineSteps.Once(file, log, body);

    // Runs a command whose standard output is the results file (written only when it succeeds).
    int Capture(string file, string[] args)
    {
        log.WriteLine($"[pipeline]   llgbm {string.Join(' ', args)} > {file}");
        var output = new StringWriter();
        var code = LlgbmCommand.Run(args, output, log);
        if (code == 0)
            AtomicFile.WriteText(file, output.ToString());
        return code;
    }

    // The config the pipeline runs: the repository's, with the plan's overrides written under ROOT/configs.
    string ConfigPath(string name)
    {
        var source = Path.Combine(repository, "configs", name + ".json");
        if (plan.ConfigOverrides.Count == 0)
            return source;
        var config = GeneratorConfig.Load(source);
        var node = JsonNode.Parse(config.ToJson())!.AsObject();
        foreach (var (key, value) in plan.ConfigOverrides)
            node[key] = value.DeepClone();
        return PipelineSteps.WriteText(layout.Config(name), node.ToJsonString(GeneratorConfig.JsonOptions));
    }

    // The teacher pool: in one command, or in shards of the task list, one child process each, then one manifest.
    int TeacherPool()
    {
        string[] args = ["teachers", "train", "--base", Base, "--tasks", Suite, "--out", Teachers, .. plan.TeacherArgs];
        if (processes.Jobs == 1)
            return Llgbm(args);
        var shards = Enumerable.Range(0, processes.Jobs)
            .Select(i => new LlgbmJob($"teachers-{i}", [.. args, "--shard", $"{i}/{processes.Jobs}"])).ToList();
        var code = processes.RunAll(shards);
        if (code == 0)
            LLGBM.Teachers.TeacherPool.WriteManifest(Teachers);
        return code;
    }

    int Generators()
    {
        var runs = plan.Generators.Select(run =>
        {
            string[] args = ["generator", "train", "--config", ConfigPath(run.Config), "--runs", root,
                "--seed", run.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture)];
            if (run.LambdaDelta is { } l)
                args = [.. args, "--lambda-delta", l.ToString("R", System.Globalization.CultureInfo.InvariantCulture)];
            return new LlgbmJob(PipelinePlan.RunName(run.Config, run), args);
        }).ToList();
        return RunJobs(runs);
    }

    // Independent commands: as child processes, Jobs at a time, or one after the other in process.
    int RunJobs(IReadOnlyList<LlgbmJob> all)
    {
        if (processes.Jobs > 1)
            return processes.RunAll(all);
        foreach (var job in all)
        {
            var code = Llgbm(job.Args);
            if (code != 0)
                return code;
        }
        return 0;
    }

    int Retrieval()
    {
        foreach (var k in plan.RetrievalKs)
            foreach (var task in plan.RetrievalTasks)
            {
                var code = Once(layout.Retrieval(k, task), file => Llgbm(
                    ["retrieve-merge", "--task", task, .. plan.RetrievalTasks.Where(t => t != task).SelectMany(t => new[] { "--exclude", t }),
                        "--k", k.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        "--base", Base, "--tasks", Suite, "--teachers", Teachers, "--deltas", Deltas, "--out", file, .. plan.RetrievalArgs]));
                if (code != 0)
                    return code;
            }
        return 0;
    }

    int Scripts()
    {
        if (!runScripts)
        {
            log.WriteLine("[pipeline]   skipped (--no-scripts)");
            return 0;
        }
        var scripts = Directory.Exists(Path.Combine(repository, "scripts"))
            ? Directory.GetFiles(Path.Combine(repository, "scripts"), "*.fsx").Where(IsTableScript)
                .OrderBy(f => Path.GetFileName(f) == AssemblyScript).ThenBy(f => f, StringComparer.Ordinal).ToList()
            : [];
        foreach (var script in scripts)
        {
            log.WriteLine($"[pipeline]   dotnet fsi {Path.GetFileName(script)} {root} {paper}");
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = repository };
            foreach (var a in new[] { "fsi", script, Path.GetFullPath(root), Path.GetFullPath(paper) })
                info.ArgumentList.Add(a);
            using var process = Process.Start(info) ?? throw new LlgbmException("could not start dotnet fsi.");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            log.Write(stdout.Result);
            log.Write(stderr.Result);
            if (process.ExitCode != 0)
                return process.ExitCode;
        }
        return 0;
    }

    // The script that assembles the paper from the tables: it runs last.
    const string AssemblyScript = "paper.fsx";

    // The scripts that write tables and figures (Library.fsx and Common.fsx are loaded by them; compositions are not
    // paper scripts).
    static bool IsTableScript(string path) =>
        Path.GetFileName(path) is not ("Library.fsx" or "Common.fsx" or "retrieval-merge.fsx");
}
