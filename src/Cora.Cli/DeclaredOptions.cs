using System.CommandLine;
using System.Reflection;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>
/// Command-line options built from the library's declarations (<see cref="OptionAttribute"/> on the options records): the flag,
/// its help, its type and its default all come from the property, and errors about a property name its flag
/// (<see cref="FlagOf"/>). Ranges are checked once, by the records' <c>Validate</c>.
/// </summary>
internal sealed class DeclaredOptions
{
    /// <summary><c>ParseResult.GetValue&lt;T&gt;(Option&lt;T&gt;)</c>, made for each option's type in <see cref="Apply"/>.</summary>
    private static readonly MethodInfo GetValue = typeof(ParseResult).GetMethods().First(m => m.Name == nameof(ParseResult.GetValue) && m.IsGenericMethod
        && m.GetParameters()[0].ParameterType.IsGenericType && m.GetParameters()[0].ParameterType.GetGenericTypeDefinition() == typeof(Option<>));

    private readonly List<(PropertyInfo Property, Option Option)> _bound = new();
    private readonly bool _overridesOnly;

    /// <param name="type">The options record (e.g. <c>TrainingOptions</c>).</param>
    /// <param name="overridesOnly">The flags change values of a starting record (e.g. a preset) only when given: no default shown.</param>
    /// <param name="skip">Properties the command sets itself.</param>
    public DeclaredOptions(Type type, bool overridesOnly = false, params string[] skip)
    {
        _overridesOnly = overridesOnly;
        object defaults = Activator.CreateInstance(type)!;
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<OptionAttribute>() is not { } a || skip.Contains(p.Name)) continue;
            object? dflt = overridesOnly ? null : p.GetValue(defaults);
            _bound.Add((p, Make(p.PropertyType, a, dflt, overridesOnly)));
        }
    }

    public IEnumerable<Option> Options => _bound.Select(b => b.Option);

    /// <summary>Whether the option of <paramref name="property"/> was given on the command line.</summary>
    public bool Given(ParseResult p, string property) =>
        _bound.FirstOrDefault(b => b.Property.Name == property).Option is { } o && p.GetResult(o) is { Implicit: false };

    public void AddTo(Command c) { foreach (var o in Options) c.Options.Add(o); }

    /// <summary>A copy of <paramref name="start"/> with the values given on the command line (all of them, defaults included, unless
    /// the options only override).</summary>
    public T Apply<T>(T start, ParseResult p) where T : class
    {
        var copy = (T)typeof(T).GetMethod("<Clone>$")!.Invoke(start, null)!;
        foreach (var (prop, option) in _bound)
        {
            var result = p.GetResult(option);
            if (_overridesOnly && result is null or { Implicit: true }) continue;
            object? value = GetValue
                .MakeGenericMethod(OptionType(prop.PropertyType, _overridesOnly)).Invoke(p, new object[] { option });
            if (value is null && _overridesOnly) continue;
            prop.SetValue(copy, value);
        }
        return copy;
    }

    /// <summary>A copy of <paramref name="start"/> (e.g. a named recipe) with only the values given on the command line changed.</summary>
    public T ApplyGiven<T>(T start, ParseResult p) where T : class
    {
        var copy = (T)typeof(T).GetMethod("<Clone>$")!.Invoke(start, null)!;
        foreach (var (prop, option) in _bound)
        {
            if (p.GetResult(option) is null or { Implicit: true }) continue;
            prop.SetValue(copy, GetValue.MakeGenericMethod(OptionType(prop.PropertyType, _overridesOnly)).Invoke(p, new object[] { option }));
        }
        return copy;
    }

    private static Type OptionType(Type property, bool overridesOnly) =>
        overridesOnly && property.IsValueType && Nullable.GetUnderlyingType(property) is null ? typeof(Nullable<>).MakeGenericType(property) : property;

    private static Option Make(Type property, OptionAttribute a, object? dflt, bool overridesOnly)
    {
        var type = OptionType(property, overridesOnly);
        var option = (Option)Activator.CreateInstance(typeof(Option<>).MakeGenericType(type), a.Flag, Array.Empty<string>())!;
        option.Description = a.Help;
        if (dflt is not null)
        {
            // DefaultValueFactory is a Func<ArgumentResult, T>: built for the option's own T.
            var factoryType = typeof(Func<,>).MakeGenericType(typeof(System.CommandLine.Parsing.ArgumentResult), type);
            var body = System.Linq.Expressions.Expression.Lambda(factoryType,
                System.Linq.Expressions.Expression.Constant(dflt, type), System.Linq.Expressions.Expression.Parameter(typeof(System.CommandLine.Parsing.ArgumentResult)));
            option.GetType().GetProperty("DefaultValueFactory")!.SetValue(option, body.Compile());
        }
        return option;
    }

    /// <summary>The flag declared for an option path such as <c>Training.LearningRate</c> under <paramref name="root"/>, or the path
    /// itself when nothing declares one.</summary>
    public static string FlagOf(Type root, string path)
    {
        var type = root;
        PropertyInfo? prop = null;
        foreach (var part in path.Split('.'))
        {
            prop = type.GetProperty(part, BindingFlags.Public | BindingFlags.Instance);
            if (prop is null) return path;
            type = prop.PropertyType;
        }
        return prop?.GetCustomAttribute<OptionAttribute>()?.Flag ?? path;
    }

    /// <summary>The help declared on a property (for the few options a command builds itself).</summary>
    public static string Help(Type type, string property) => type.GetProperty(property)!.GetCustomAttribute<OptionAttribute>()!.Help;
}
