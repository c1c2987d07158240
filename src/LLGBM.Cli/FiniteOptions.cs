using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace LLGBM.Cli;

/// <summary>
/// Refuses NaN and ±infinity in every floating-point option of a command tree (<c>double</c>, <c>float</c>, their
/// nullable forms and arrays): .NET parses "NaN", "Infinity" and "1e999" as valid doubles, and no option of LLGBM
/// means anything with them. The error is a parse error naming the option and the value.
/// </summary>
public static class FiniteOptions
{
    static readonly HashSet<Type> FloatingTypes =
    [
        typeof(double), typeof(float), typeof(double?), typeof(float?), typeof(double[]), typeof(float[]),
        typeof(List<double>), typeof(List<float>),
    ];

    /// <summary>Adds the check to every floating-point option of <paramref name="command"/> and its subcommands.</summary>
    /// <returns>The number of options checked.</returns>
    public static int Require(Command command)
    {
        var count = 0;
        foreach (var option in command.Options.Where(o => FloatingTypes.Contains(o.ValueType)))
        {
            option.Validators.Add(result => Check(option, result));
            count++;
        }
        foreach (var subcommand in command.Subcommands)
            count += Require(subcommand);
        return count;
    }

    static void Check(Option option, OptionResult result)
    {
        foreach (var token in result.Tokens)
        {
            if (!IsFinite(token.Value, single: option.ValueType == typeof(float) || option.ValueType == typeof(float?)
                || option.ValueType == typeof(float[]) || option.ValueType == typeof(List<float>)))
            {
                result.AddError($"{option.Name} {token.Value}: expected a finite number.");
                return;
            }
        }
    }

    /// <summary>
    /// False for text that parses (as the invariant or the current culture reads it) to NaN or ±infinity, as a double
    /// or, when <paramref name="single"/>, as a float (where 1e39 overflows).
    /// </summary>
    static bool IsFinite(string text, bool single)
    {
        const NumberStyles styles = NumberStyles.Float | NumberStyles.AllowThousands;
        foreach (var culture in new[] { CultureInfo.InvariantCulture, CultureInfo.CurrentCulture })
        {
            if (double.TryParse(text, styles, culture, out var value) && !double.IsFinite(value))
                return false;
            if (single && float.TryParse(text, styles, culture, out var narrow) && !float.IsFinite(narrow))
                return false;
        }
        return true;
    }
}
