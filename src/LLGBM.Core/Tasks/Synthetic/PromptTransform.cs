using System.Text.Json.Serialization;

namespace LLGBM.Tasks.Synthetic;

/// <summary>How the texts of a condition are rewritten before encoding (<see cref="SyntheticPromptRewriter"/>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PromptTransform>))]
public enum PromptTransform
{
    /// <summary>The texts as the suite writes them (the generator's training distribution).</summary>
    Original,

    /// <summary>The prompt's wording replaced by one of several alternative phrasings of its domain; the layout kept.</summary>
    Paraphrased,

    /// <summary>The layout changed: another template, field order and casing; the content kept.</summary>
    Reformatted,
}
