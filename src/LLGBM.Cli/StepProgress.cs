using Spectre.Console;

namespace LLGBM.Cli;

/// <summary>One optimiser step of a training loop, as a progress display shows it.</summary>
/// <param name="Name">What is being trained (a task's name), or null for a single run.</param>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="TotalSteps">Steps of the whole run.</param>
/// <param name="Loss">The step's training loss.</param>
/// <param name="Detail">More figures for the plain line (e.g. <c>"  lr 0.001  12s"</c>), or null.</param>
public sealed record StepReport(string? Name, int Step, int TotalSteps, double Loss, string? Detail = null);

/// <summary>Where a long training command reports its steps and its log lines.</summary>
public interface IStepProgress
{
    /// <summary>Reports a finished step.</summary>
    void Step(StepReport report);

    /// <summary>Writes a log line (kept in the output, above a live display).</summary>
    void Line(string text);
}

/// <summary>
/// Progress of long training commands (<c>base pretrain</c>, <c>teachers train</c>): Spectre progress bars (steps, loss,
/// time left) when the progress writer is a terminal, plain lines otherwise — one every <c>every</c> steps and one at
/// the last step, flushed at once, so logs of child processes and CI, and the output of a killed run, keep every line.
/// </summary>
public static class StepProgress
{
    /// <summary>
    /// Whether <paramref name="writer"/> is the process's standard error and that is an interactive terminal (not
    /// redirected to a file or a pipe, not a CI log).
    /// </summary>
    public static bool IsTerminal(TextWriter writer) =>
        ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected && Terminal(writer).Profile.Capabilities.Interactive;

    /// <summary>
    /// Runs <paramref name="body"/> with progress reported to <paramref name="writer"/>: live bars on a terminal
    /// (see <see cref="IsTerminal"/>), otherwise plain lines <c>[PREFIX] NAME: step S/T  loss L DETAIL</c>.
    /// <paramref name="hideCompleted"/> removes a finished bar (when one command trains many things in turn).
    /// </summary>
    public static T Run<T>(TextWriter writer, string prefix, int every, Func<IStepProgress, T> body, bool hideCompleted = false) =>
        IsTerminal(writer)
            ? RunLive(Terminal(writer), prefix, body, hideCompleted)
            : body(new PlainStepProgress(writer, prefix, every));

    /// <summary>
    /// Runs <paramref name="body"/> inside a Spectre progress display on <paramref name="console"/>: one bar per
    /// <see cref="StepReport.Name"/> (<paramref name="prefix"/> when it has none) with its step, loss, elapsed time and
    /// time left; log lines are written above the bars.
    /// </summary>
    public static T RunLive<T>(IAnsiConsole console, string prefix, Func<IStepProgress, T> body, bool hideCompleted = false) =>
        new Progress(console)
            .AutoClear(false)
            .HideCompleted(hideCompleted)
            .Columns(
                new TaskDescriptionColumn { Alignment = Justify.Left },
                new ProgressBarColumn(),
                new PercentageColumn(),
                new ElapsedTimeColumn(),
                new RemainingTimeColumn(),
                new SpinnerColumn())
            .Start(context => body(new LiveStepProgress(console, context, prefix)));

    static IAnsiConsole Terminal(TextWriter writer) =>
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
}

/// <summary>Plain progress lines: every <paramref name="every"/>-th step and the last one, each flushed.</summary>
public sealed class PlainStepProgress(TextWriter writer, string prefix, int every) : IStepProgress
{
    /// <summary>The line for <paramref name="report"/>, or null when that step is not printed.</summary>
    public string? Format(StepReport report) =>
        report.Step % Math.Max(every, 1) == 0 || report.Step == report.TotalSteps
            ? $"[{prefix}] {(report.Name is null ? "" : report.Name + ": ")}step {report.Step}/{report.TotalSteps}  loss {report.Loss:F4}{report.Detail}"
            : null;

    /// <inheritdoc/>
    public void Step(StepReport report)
    {
        if (Format(report) is { } line)
            Line(line);
    }

    /// <inheritdoc/>
    public void Line(string text)
    {
        writer.WriteLine(text);
        writer.Flush();
    }
}

/// <summary>
/// Live Spectre progress bars inside a running display, one per <see cref="StepReport.Name"/> (named
/// <paramref name="unnamed"/> when the report has no name).
/// </summary>
sealed class LiveStepProgress(IAnsiConsole console, ProgressContext context, string unnamed) : IStepProgress
{
    readonly Dictionary<string, ProgressTask> tasks = [];

    public void Step(StepReport report)
    {
        var name = Markup.Escape(report.Name ?? unnamed);
        if (!tasks.TryGetValue(name, out var task))
        {
            task = context.AddTask(name, maxValue: report.TotalSteps);
            tasks[name] = task;
        }
        task.Description = $"[bold]{name}[/] step {report.Step}/{report.TotalSteps}  loss {report.Loss:F4}";
        task.Value = report.Step;
        if (report.Step >= report.TotalSteps)
            task.StopTask();
    }

    public void Line(string text) => console.WriteLine(text);
}
