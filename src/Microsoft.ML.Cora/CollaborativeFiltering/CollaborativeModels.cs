using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>The CF models Cora has (<see cref="All"/>), and what is done with one by its kind or name.</summary>
public static class CollaborativeModels
{
    /// <summary>Every CF model, one entry each: adding a model is its file, its <see cref="CollaborativeKind"/> value and a line here.</summary>
    public static IReadOnlyList<CollaborativeModelUnit> All { get; } = new[] { MatrixFactorization.Registration, LightGcn.Registration, SasRec.Registration };

    /// <summary>The unit of a kind.</summary>
    public static CollaborativeModelUnit Of(CollaborativeKind kind) =>
        All.FirstOrDefault(u => u.Kind == kind) ?? throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown CF model");

    /// <summary>The unit of a saved or trained CF model, by its <see cref="ICollaborativeModel.Kind"/>.</summary>
    public static CollaborativeModelUnit Named(string kind) =>
        All.FirstOrDefault(u => u.Name == kind) ?? throw new InvalidDataException($"unknown CF model kind '{ErrorText.Elide(kind, 40)}'; this Cora knows: {string.Join(", ", Kinds)}.");

    /// <summary>Rebuilds a saved CF model by its <see cref="ICollaborativeModel.Kind"/>.</summary>
    public static ICollaborativeModel Import(string kind, Func<string, Tensor> read) => Named(kind).Import(read);

    /// <summary>Warm = the CF stage was trained on both the user and the item (everything else is cold); Cora's one definition.</summary>
    public static bool IsWarm(ICollaborativeModel cf, int user, int item) => cf.KnowsUser(user) && cf.KnowsItem(item);

    /// <summary>The CF models Cora has, by <see cref="ICollaborativeModel.Kind"/>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = All.Select(u => u.Name).ToArray();

    /// <summary>Trains the CF stage of a kind on the training rows (early stopping on <paramref name="valid"/>'s AUC).</summary>
    public static ICollaborativeModel Train(CollaborativeKind kind, IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid,
        MatrixFactorizationOptions? options = null, Action<string>? log = null, CancellationToken ct = default) =>
        Of(kind).Train(train, valid, options, log, ct);

    /// <summary>The name of a CF kind as the CLI and saved models write it ("mf", "lightgcn", "sasrec").</summary>
    public static string Name(CollaborativeKind kind) => Of(kind).Name;

    /// <summary>MF, LightGCN or SASRec (for messages).</summary>
    public static string DisplayName(CollaborativeKind kind) => Of(kind).DisplayName;

    /// <summary>The kind named <paramref name="s"/> (its name or an alias, any case).</summary>
    public static CollaborativeKind Parse(string s)
    {
        string key = s.Trim().ToLowerInvariant();
        return (All.FirstOrDefault(u => u.Name == key || u.Aliases.Contains(key))
            ?? throw new ArgumentException($"unknown CF model '{ErrorText.Elide(s, 40)}'; use {string.Join(", ", Kinds)}.")).Kind;
    }
}
