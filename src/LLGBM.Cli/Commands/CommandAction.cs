using System.CommandLine;

namespace LLGBM.Cli.Commands;

/// <summary>Runs a command body and turns LLGBM's errors into a one-line message and exit code 2.</summary>
public static class CommandAction
{
    /// <summary>Exit code for bad input or a failed check.</summary>
    public const int InputError = 2;

    /// <summary>Sets <paramref name="body"/> as the action of <paramref name="command"/>.</summary>
    public static void Set(Command command, Func<ParseResult, int> body) =>
        command.SetAction(parse =>
        {
            try
            {
                return body(parse);
            }
            catch (LlgbmException e)
            {
                parse.InvocationConfiguration.Error.WriteLine($"error: {e.Message}");
                return InputError;
            }
        });

    /// <summary>Where a command writes its results (standard output unless the caller redirected it).</summary>
    public static TextWriter Out(ParseResult parse) => parse.InvocationConfiguration.Output;

    /// <summary>Where a command writes progress and diagnostics (standard error unless redirected).</summary>
    public static TextWriter Err(ParseResult parse) => parse.InvocationConfiguration.Error;

    /// <summary>
    /// Writes a table (or any Spectre renderable) to <paramref name="output"/>; when that is not a terminal, lines
    /// are laid out 160 columns wide instead of the 80 a redirected console defaults to.
    /// </summary>
    public static void Write(TextWriter output, Spectre.Console.Rendering.IRenderable renderable)
    {
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(output) });
        if (Console.IsOutputRedirected || !ReferenceEquals(output, Console.Out))
            console.Profile.Width = 160;
        console.Write(renderable);
    }

    /// <summary>
    /// The ending of every command that produces a result: <paramref name="json"/> (one JSON document) goes to the
    /// <c>--output</c> file, if given, atomically and with a final newline; then to standard output with
    /// <c>--json</c>, or else <paramref name="writeTable"/> writes the readable form.
    /// </summary>
    public static int WriteResult(
        ParseResult parse, Option<string?> output, Option<bool> jsonOption, string json, Action<TextWriter> writeTable)
    {
        if (parse.GetValue(output) is { } path)
            AtomicFile.WriteText(path, json + "\n");
        var o = Out(parse);
        if (parse.GetValue(jsonOption))
            o.WriteLine(json);
        else
            writeTable(o);
        return 0;
    }
}
