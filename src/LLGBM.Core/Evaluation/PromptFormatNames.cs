using LLGBM.Tasks;

namespace LLGBM.Evaluation;

/// <summary>The names prompt formats carry in results and on the command line: "bare" and "instructed".</summary>
public static class PromptFormatNames
{
    /// <summary>The name of the bare format.</summary>
    public const string Bare = "bare";

    /// <summary>The name of the format with the task's instruction.</summary>
    public const string Instructed = "instructed";

    /// <summary>"instructed" when <paramref name="format"/> prefixes the instruction, else "bare".</summary>
    public static string Name(PromptFormat format) => format.Instructed ? Instructed : Bare;

    /// <summary>The format named <paramref name="name"/>; an error for other names.</summary>
    public static PromptFormat Parse(string name) => name switch
    {
        Bare => PromptFormat.Bare,
        Instructed => PromptFormat.WithInstruction,
        _ => throw new LlgbmException($"Unknown prompt format \"{name}\": expected {Bare} or {Instructed}."),
    };
}
